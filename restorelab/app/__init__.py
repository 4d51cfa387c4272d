"""The application layer: the command line, the demo and the doctor.

These modules sit on top of everything (core, curation, degradations, benchmark, dashboard);
nothing below imports them.
"""
