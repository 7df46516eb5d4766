/* tok_bpe: not written yet */
