"""The page's own styles (cards, tables, hints, area status), shared by every pane that shows them."""

from ..render import COLOR_KEY

HEADER_COLOR = "#1B4332"

STYLESHEET = """
.fg-cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.fg-card { background: #fff; border: 1px solid #e3e6e8; border-radius: 8px; padding: 10px 14px; }
.fg-card .fg-label { color: #5f6b73; font-size: 0.85em; text-transform: uppercase; letter-spacing: .04em; }
.fg-card .fg-value { font-size: 1.6em; font-weight: 600; color: #1b2a33; font-variant-numeric: tabular-nums; }
.fg-card .fg-unit { font-size: .6em; color: #5f6b73; margin-left: 4px; }
.fg-card .fg-note { font-size: .85em; color: #5f6b73; }
.fg-card.fg-legal { border-top: 4px solid %(legal)s; } .fg-card.fg-illegal { border-top: 4px solid %(illegal)s; }
.fg-card.fg-total { border-top: 4px solid %(header)s; }
.fg-swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.fg-legal .fg-swatch, .fg-swatch.fg-legal { background: %(legal)s; } .fg-swatch.fg-illegal { background: %(illegal)s; }
.fg-swatch.fg-none { background: %(none)s; }
.fg-legend div { margin: 2px 0; } .fg-hint { color: #5f6b73; } .fg-area-error { color: #b3261e; }
table { border-collapse: collapse; width: 100%%; font-size: .92em; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceff1; }
.fg-findings th, .fg-findings td { padding: 4px 3px; }  /* five columns in the click panel's 320 px */
""" % {"legal": COLOR_KEY["legal"], "illegal": COLOR_KEY["illegal"], "none": COLOR_KEY["none"], "header": HEADER_COLOR}
