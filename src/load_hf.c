/* load_hf: not written yet */
