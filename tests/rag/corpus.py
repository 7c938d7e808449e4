"""A small corpus of real English paragraphs on distinct topics."""

from __future__ import annotations

DOCS: dict[str, str] = {
    "volcanoes.md": (
        "# Volcanoes\n\n"
        "A volcano is an opening in the crust of a planet through which molten rock, "
        "volcanic ash and gases escape from a magma chamber below the surface. "
        "Most volcanoes on Earth form where tectonic plates diverge or converge.\n\n"
        "When pressure in the magma chamber rises, the volcano erupts. Explosive eruptions "
        "throw ash columns many kilometres high, while effusive eruptions release slow "
        "rivers of basaltic lava, as on Hawaii. Volcanic ash can ground aircraft because it "
        "melts inside jet engines."
    ),
    "bread.txt": (
        "Baking bread starts with flour, water, salt and yeast. Kneading the dough develops "
        "gluten, the protein network that traps the carbon dioxide made by the yeast, so the "
        "loaf rises.\n\n"
        "After a first rise the dough is shaped, proofed again and baked in a hot oven, "
        "usually around 230 degrees Celsius. Steam in the first minutes keeps the crust soft "
        "long enough for the loaf to expand, and later gives a crisp, shiny crust."
    ),
    "tides.txt": (
        "Ocean tides are the regular rise and fall of sea level caused mainly by the "
        "gravitational pull of the Moon, and to a lesser degree the Sun. Most coasts see two "
        "high tides and two low tides every lunar day of about 24 hours and 50 minutes.\n\n"
        "Spring tides, with the largest range, happen when the Sun, Moon and Earth are "
        "aligned at new and full moon. Neap tides, with the smallest range, happen at the "
        "quarter moons."
    ),
    "espresso.md": (
        "# Espresso\n\n"
        "Espresso is coffee brewed by forcing hot water at about nine bars of pressure through "
        "finely ground, compacted coffee. A shot takes roughly 25 to 30 seconds and yields a "
        "concentrated drink topped with crema, a foam of oils and carbon dioxide.\n\n"
        "The grinder matters as much as the machine: too fine a grind chokes the flow and "
        "tastes bitter, too coarse a grind runs fast and tastes sour."
    ),
}
