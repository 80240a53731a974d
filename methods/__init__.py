"""Built-in method plugins (installed as ``laicbench.methods``).

``BUILTIN`` lists the modules that register methods, in the order of the tables; ``FIGURES`` the
modules that register report figures specific to a method.
"""

BUILTIN = (
    "laicbench.methods.clip_kmeans",
    "laicbench.methods.tac",
    "laicbench.methods.gradnorm",
    "laicbench.methods.ours",
    "laicbench.methods.sic",
    "laicbench.methods.spectral",
    "laicbench.methods.umap_ward",
    "laicbench.methods.scan",
    "laicbench.methods.temi",
    "laicbench.methods.turtle",
    "laicbench.methods.ntk_sc",
    "laicbench.methods.ssc_omp",
    "laicbench.methods.ensc",
    "laicbench.methods.cpp",
    "laicbench.methods.pro_dsc",
    "laicbench.methods.sac",
    "laicbench.methods.seic",
    "laicbench.methods.magic",
    "laicbench.methods.idc",
    "laicbench.methods.zeroshot",
)
FIGURES = ("laicbench.methods.ours_figures",)
