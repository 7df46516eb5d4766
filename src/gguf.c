/* gguf: not written yet */
