/* tok_load: not written yet */
