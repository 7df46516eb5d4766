/* mask: not written yet */
