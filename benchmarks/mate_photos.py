"""The real photographs the curation benchmarks use: Debian's ``mate-backgrounds`` package
(``apt-get install -y mate-backgrounds``), one copy of the list for ``curation.py`` and
``curation_pool.py``."""

from pathlib import Path

MATE_DIR = Path("/usr/share/backgrounds/mate")
#: The photographs among mate-backgrounds 1.26 (the rest are drawings, renders and a
#: painting: abstract/*, desktop/*).
MATE_PHOTOS = (
    "nature/Aqua.jpg",
    "nature/Blinds.jpg",
    "nature/Dune.jpg",
    "nature/FreshFlower.jpg",
    "nature/Garden.jpg",
    "nature/GreenMeadow.jpg",
    "nature/LadyBird.jpg",
    "nature/RainDrops.jpg",
    "nature/Storm.jpg",
    "nature/TwoWings.jpg",
    "nature/Wood.jpg",
    "nature/YellowFlower.jpg",
)
#: The two photographs of 5 MP or more (8.3 and 17.9 MP).
MATE_LARGE = ("abstract/Elephants_3840x2160.jpg", "abstract/Elephants_5640x3172.jpg")
