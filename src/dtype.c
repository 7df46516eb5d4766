/* dtype: not written yet */
