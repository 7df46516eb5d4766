/* tok_spm: not written yet */
