/* kernels: not written yet */
