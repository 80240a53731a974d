"""Built-in dataset plugins (installed as ``laicbench.datasets``)."""
