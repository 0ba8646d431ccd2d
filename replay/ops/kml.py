"""KML 2.2 (OGC 07-147r2) from the GeoJSON collections, for Google Earth and most GIS tools.

One document with a folder per collection; each feature a Placemark whose name is its
id and whose description lists its properties. KML writes ``lon,lat`` too, and its
polygons have an ``outerBoundaryIs`` and ``innerBoundaryIs`` rather than ring order.
Written with the standard library's ElementTree, which escapes text correctly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

KML_NS = "http://www.opengis.net/kml/2.2"

# aabbggrr, KML's colour order: semi-transparent fills for zones and coverage.
STYLES = {
    "zone": ("ff0000ff", "400000ff"),
    "sensor": ("ffff8800", "20ff8800"),
    "track": ("ff00ffff", "00000000"),
    "alert": ("ff0000ff", "00000000"),
}


def _coords(points: list[list[float]]) -> str:
    return " ".join(f"{p[0]:.7f},{p[1]:.7f}" for p in points)


def _geometry(parent: ET.Element, geom: dict[str, Any]) -> None:
    kind = geom.get("type")
    coords: Any = geom.get("coordinates")
    if kind == "Point":
        ET.SubElement(ET.SubElement(parent, "Point"), "coordinates").text = _coords([coords])
    elif kind == "LineString":
        line = ET.SubElement(parent, "LineString")
        ET.SubElement(line, "tessellate").text = "1"
        ET.SubElement(line, "coordinates").text = _coords(coords)
    elif kind == "Polygon":
        poly = ET.SubElement(parent, "Polygon")
        for i, ring in enumerate(coords):
            boundary = ET.SubElement(poly, "outerBoundaryIs" if i == 0 else "innerBoundaryIs")
            lr = ET.SubElement(boundary, "LinearRing")
            ET.SubElement(lr, "coordinates").text = _coords(ring)
    elif kind == "MultiPolygon":
        multi = ET.SubElement(parent, "MultiGeometry")
        for polygon in coords:
            _geometry(multi, {"type": "Polygon", "coordinates": polygon})


def _description(props: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in props.items() if v is not None)


def document(name: str, folders: dict[str, tuple[str, dict[str, Any]]]) -> bytes:
    """A KML document.

    Parameters
    ----------
    name : str
        The document's name.
    folders : dict
        Folder name -> (style key in :data:`STYLES`, GeoJSON FeatureCollection).

    Returns
    -------
    bytes
        UTF-8 XML with its declaration.
    """
    kml = ET.Element("kml", xmlns=KML_NS)
    doc = ET.SubElement(kml, "Document")
    ET.SubElement(doc, "name").text = name
    for key, (line, fill) in STYLES.items():
        style_el = ET.SubElement(doc, "Style", id=key)
        ls = ET.SubElement(style_el, "LineStyle")
        ET.SubElement(ls, "color").text = line
        ET.SubElement(ls, "width").text = "2"
        ET.SubElement(ET.SubElement(style_el, "PolyStyle"), "color").text = fill
    for folder_name, (style, fc) in folders.items():
        folder = ET.SubElement(doc, "Folder")
        ET.SubElement(folder, "name").text = folder_name
        for f in fc.get("features", []):
            props = f.get("properties") or {}
            pm = ET.SubElement(folder, "Placemark")
            label = f.get("id", props.get("name", props.get("id", "")))
            ET.SubElement(pm, "name").text = str(label)
            ET.SubElement(pm, "description").text = _description(props)
            ET.SubElement(pm, "styleUrl").text = f"#{style}"
            _geometry(pm, f["geometry"])
    ET.indent(kml)
    return ET.tostring(kml, encoding="utf-8", xml_declaration=True)
