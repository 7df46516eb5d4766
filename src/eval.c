/* eval: not written yet */
