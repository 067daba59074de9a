"""The map of all the art: every indexed image placed in 2D by its vector, drawn as a tile
pyramid a map viewer loads like a street map, with regions labelled from their pages' words.

``vectors`` reads what the layout is made from, ``layout`` fits and places points, ``pyramid``
draws the tiles, ``labels`` names the regions, ``info`` is the map's description file that the
read path (``search.artmap``) opens, and ``stage`` is the map stage ``update`` runs.
"""
