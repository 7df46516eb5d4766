/* threads: not written yet */
