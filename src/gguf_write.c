/* gguf_write: not written yet */
