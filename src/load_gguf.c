/* load_gguf: not written yet */
