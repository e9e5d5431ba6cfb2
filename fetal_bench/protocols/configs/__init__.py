"""Protocol configs (YAML). A package so that the files ship in wheels as package data."""
