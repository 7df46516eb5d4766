/* forward: not written yet */
