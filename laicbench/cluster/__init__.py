"""The shared primitives of the methods: one k-means, one k-NN, one Hungarian matching and the
metrics, TAC's noun selection, ridge relations, prompt learning and cluster heads."""
