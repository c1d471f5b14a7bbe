"""The zones dashboard: map, numbers and charts of the deforestation zones.

Served by ``forestguard serve`` (at /); also ``panel serve dashboards/zones.py
--plugins forestguard.server.routes`` in development.
"""

from forestguard.dashboard import ZonesDashboard

ZonesDashboard().servable(title="ForestGuard")
