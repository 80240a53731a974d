"""Built-in method plugins (installed as ``laicbench.methods``)."""
