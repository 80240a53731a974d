"""From images to cached features: open_clip backbones, the frozen text tower, feature
extraction, the content-addressed feature cache, the noun vocabulary, image datasets in their
on-disk formats, features files, and the resolution of ``--datasets`` entries to plugins."""
