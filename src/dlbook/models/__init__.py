"""The classic networks of Chapter 4 as PyTorch modules, too large to train in numpy.

Each factory builds the network as its paper describes it (the module docstrings give the layer
tables and where a variant departs), with torch's default initialisation and no downloaded
weights, and ``num_classes=1000`` by default (LeNet-5: 10). :func:`summary` prints a network as a
table of output shapes and parameter counts; :func:`receptive_field_layers` lists the geometry of
a single-path network's convolutions and poolings for
:func:`dlbook.receptive_field.receptive_field`; :func:`count_macs` counts the multiply-adds of
one forward pass; :func:`small_cnn` and :func:`deep_cnn` are CPU-sized versions for the 8x8
digits (:mod:`dlbook.models.small`). The networks::

    network                     input        parameters
    lenet5()                    1x32x32      60,840
    lenet5(modern=True)         1x32x32      61,706
    alexnet()                   3x227x227    60,965,224
    alexnet(grouped=False)      3x227x227    62,378,344
    vgg16()                     3x224x224    138,357,544
    nin()                       3x224x224    7,595,176
    googlenet()                 3x224x224    6,998,552 (13,378,280 with aux_logits=True)
    resnet18()                  3x224x224    11,689,512
    resnet34()                  3x224x224    21,797,672
    resnet50()                  3x224x224    25,557,032
"""

from dlbook.models.alexnet import alexnet
from dlbook.models.googlenet import GoogLeNet, Inception, InceptionAux, googlenet
from dlbook.models.lenet import C3_TABLE, PartialConv2d, RBFOutput, Subsampling, lenet5
from dlbook.models.nin import nin
from dlbook.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from dlbook.models.small import PlainOrResidualBlock, deep_cnn, small_cnn
from dlbook.models.summary import LayerRow, count_macs, receptive_field_layers, summary
from dlbook.models.vgg import vgg, vgg16

__all__ = [
    "lenet5", "alexnet", "vgg", "vgg16", "nin", "googlenet", "resnet18", "resnet34", "resnet50",
    "C3_TABLE", "PartialConv2d", "RBFOutput", "Subsampling", "GoogLeNet", "Inception",
    "InceptionAux", "BasicBlock", "Bottleneck", "ResNet", "LayerRow", "summary", "count_macs",
    "receptive_field_layers", "small_cnn", "deep_cnn", "PlainOrResidualBlock",
]
