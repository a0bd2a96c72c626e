"""The bottom layer of retinalnet: devices, loaders, progress, image files, class constants.

Every other module may import from here; nothing here imports from the rest of retinalnet.
Private: the public names are re-exported by the documented modules above.
"""
