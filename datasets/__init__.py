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
    "laicbench.datasets.cifar100",
    "laicbench.datasets.aircraft",
    "laicbench.datasets.flowers102",
    "laicbench.datasets.food101",
    "laicbench.datasets.stanford_cars",
    "laicbench.datasets.oxford_pets",
    "laicbench.datasets.places365",
    "laicbench.datasets.imagenet_shift",
    "laicbench.datasets.imagenet_c",
)
