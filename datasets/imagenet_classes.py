"""The wnids of the ImageNet-10 and ImageNet-Dogs subsets and their class names.

A wnid is "n" + the 8-digit offset of a noun synset in WordNet 3.0's data.noun; the name is the
synset's first lemma with underscores shown as spaces (checked against data.noun by the tests).
"""

from __future__ import annotations

# ImageNet-10 (Contrastive Clustering's list); label = position in this tuple.
IMAGENET10_WNIDS: tuple[str, ...] = (
    "n02056570",
    "n02085936",
    "n02128757",
    "n02690373",
    "n02692877",
    "n03095699",
    "n04254680",
    "n04285008",
    "n04467665",
    "n07747607",
)

# ImageNet-Dogs (Contrastive Clustering's list); label = position in this tuple.
IMAGENET_DOGS_WNIDS: tuple[str, ...] = (
    "n02085936",
    "n02086646",
    "n02088238",
    "n02091467",
    "n02097130",
    "n02099601",
    "n02101388",
    "n02101556",
    "n02102177",
    "n02105056",
    "n02105412",
    "n02105855",
    "n02107142",
    "n02110958",
    "n02112137",
)

# First lemma of each synset in WordNet 3.0 (/usr/share/wordnet/data.noun), underscores as spaces.
WNID_NAMES: dict[str, str] = {
    "n02056570": "king penguin",
    "n02085936": "Maltese dog",
    "n02128757": "snow leopard",
    "n02690373": "airliner",
    "n02692877": "airship",
    "n03095699": "container ship",
    "n04254680": "soccer ball",
    "n04285008": "sports car",
    "n04467665": "trailer truck",
    "n07747607": "orange",
    "n02086646": "Blenheim spaniel",
    "n02088238": "basset",
    "n02091467": "Norwegian elkhound",
    "n02097130": "giant schnauzer",
    "n02099601": "golden retriever",
    "n02101388": "Brittany spaniel",
    "n02101556": "clumber",
    "n02102177": "Welsh springer spaniel",
    "n02105056": "groenendael",
    "n02105412": "kelpie",
    "n02105855": "Shetland sheepdog",
    "n02107142": "Doberman",
    "n02110958": "pug",
    "n02112137": "chow",
}
