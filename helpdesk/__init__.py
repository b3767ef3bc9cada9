"""TSCC Help Desk: the desk itself. It knows no channel's library (channels live at the edge)."""
