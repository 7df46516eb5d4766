/* matmul: not written yet */
