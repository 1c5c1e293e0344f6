"""Synthetic street scenes in the Cityscapes layout: test, demo and benchmark data without a download.

* :mod:`cityseg.synthetic.dataset` - ``cityseg synth``: a dataset tree exactly like a Cityscapes
  download (:func:`~cityseg.synthetic.dataset.write_dataset`), single scenes and coherent drives.
* :mod:`cityseg.synthetic.street` - samples a random street (layout, objects, colours, light).
* :mod:`cityseg.synthetic.render` - the street world and its rendering to (RGB, labelIds).
* :mod:`cityseg.synthetic.items` - buildings, slabs, trees, poles, vehicles, walkers.
* :mod:`cityseg.synthetic.geometry` - label ids, pinhole camera, the image+label canvas.

It sits just above :mod:`cityseg.data` (it writes the layout ``cityseg.data.cityscapes`` reads);
camera bags of its frames are written by :mod:`cityseg.ros.bag.camera_bag`.
"""
