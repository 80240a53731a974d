"""Built-in dataset plugins (installed as ``laicbench.datasets``).

``BUILTIN`` lists the modules that register datasets, in registration order.
"""

BUILTIN = (
    "laicbench.datasets.demo",
    "laicbench.datasets.demo_nuisance",
    "laicbench.datasets.cifar",
    "laicbench.datasets.stl10",
    "laicbench.datasets.imagenet",
    "laicbench.datasets.dtd",
    "laicbench.datasets.ucf101",
)
