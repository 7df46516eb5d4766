/* sample: not written yet */
