"""The zones dashboard: map, numbers and charts of the deforestation zones.

Served by ``forestguard serve`` (at /); also ``panel serve dashboards/zones.py
--plugins forestguard.server.routes`` in development.
"""

from forestguard.dashboard import dashboard_page

dashboard_page().servable(title="ForestGuard")
