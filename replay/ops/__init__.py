"""The operations picture: a live map, GIS and TAK output, metrics, for an operations centre.

- :mod:`~replay.ops.layers`: the static map (zones, sensors and their coverage) in lon/lat.
- :mod:`~replay.ops.picture`: :class:`OpsPicture`, the live state built from the service's
  PUB stream (tracks with tails, open alerts, status, whether the service is heard).
- :mod:`~replay.ops.feed`: the asyncio ZeroMQ subscriber that feeds a picture.
- :mod:`~replay.ops.geojson`, :mod:`~replay.ops.kml`: RFC 7946 GeoJSON and KML documents.
- :mod:`~replay.ops.cot`: Cursor-on-Target events for ATAK/WinTAK, and their sender.
- :mod:`~replay.ops.metrics`: Prometheus metrics from the service's status.
- :mod:`~replay.ops.web`: the aiohttp server behind ``bufferzone ui``.

Everything here is a subscriber: it reads what the service publishes and never talks
back except for the open-alert snapshot request every client makes.
"""
