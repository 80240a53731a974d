"""The plugin API: what a method or a dataset plugin is written against.

Method, Resources and the parameter constraints; Dataset; the features a dataset yields and the
bundle a method sees (Need, DatasetFeatures, FeatureBundle); the registries and their decorators;
DataSettings; UserError. Nothing here imports torch.
"""
