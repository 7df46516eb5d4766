/* load_llama2c: not written yet */
