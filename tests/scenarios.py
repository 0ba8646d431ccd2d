"""Every scenario the tests run, in one place (``tests/conftest.py`` serves them).

Tests that need a variant edit the text (``str.replace``) or append a table rather
than pasting another copy. Names are the keys of :data:`SCENARIOS`.
"""

from __future__ import annotations

# Every sensor kind, walkers, a crosser and a prober; 60 s. The sensors tests' workhorse.
SMALL = """
name = "small"
seed = 11
duration = 60.0
truth_dt = 1.0
origin = [24.0, 45.0]
area = [[-6000.0, -5000.0], [6000.0, 5000.0]]

[[zones]]
name = "zone-t"
sides = ["north", "south"]
local = [[-4000.0, -300.0], [4000.0, -300.0], [4000.0, 300.0], [-4000.0, 300.0]]

[[targets]]
name = "walkers"
cls = "person"
behaviour = "wander"
count = 6
offset = [300.0, 2000.0]
birth = [-20.0, 20.0]

[[targets]]
name = "crosser"
cls = "vehicle"
behaviour = "cross"
side = "south"
along = 0.5
offset = 200.0
speed = 20.0
birth = 2.0

[[targets]]
name = "prober"
cls = "vehicle"
behaviour = "probe"
side = "north"
along = 0.2
offset = 400.0
stop = 100.0
speed = 15.0
birth = 0.0

[[sensors]]
id = "radar-1"
kind = "radar"
position = [0.0, -3000.0]
range = [50.0, 6000.0]
width = 120.0
rate = 1.0
pd = 0.9
clutter = 2.0
sigma_range = 10.0
sigma_bearing = 0.2
latency = [0.1, 0.3]

[[sensors]]
id = "uav-1"
kind = "drone"
racetrack = { center = [0.0, 0.0], length = 4000.0, width = 1000.0 }
speed = 30.0
rate = 4.0
footprint = [1200.0, 800.0]
pd = 0.9
clutter = 0.3
sigma = 20.0
latency = 0.5

[[sensors]]
id = "sat-1"
kind = "satellite"
revisit = 15.0
first_pass = 5.0
swath = { center = [0.0, 0.0], length = 10000.0, width = 6000.0 }
pd = 0.95
clutter = 3.0
sigma = 5.0
latency = [12.0, 14.0]

[[sensors]]
id = "ugs"
kind = "ugs"
line = [[-3000.0, 500.0], [3000.0, 500.0]]
count = 3
radius = 150.0
rate = 0.5
pd = { person = 0.3, vehicle = 0.9 }
clutter = 0.05
"""

# 60 s, a crossing vehicle and a few walkers, one radar: record, replay and eval.
TINY = """
name = "tiny"
seed = 5
duration = 60.0
truth_dt = 1.0
origin = [24.0, 45.0]
area = [[-4000.0, -4000.0], [4000.0, 4000.0]]

[[zones]]
name = "zone-t"
sides = ["north", "south"]
local = [[-3000.0, -300.0], [3000.0, -300.0], [3000.0, 300.0], [-3000.0, 300.0]]

[[targets]]
name = "walkers"
cls = "person"
behaviour = "wander"
count = 3
offset = [600.0, 1500.0]
birth = [-10.0, 0.0]

[[targets]]
name = "crosser"
cls = "vehicle"
behaviour = "cross"
side = "south"
along = 0.5
offset = 500.0
speed = 20.0
birth = 0.0

[[sensors]]
id = "radar-1"
kind = "radar"
position = [0.0, -2500.0]
range = [50.0, 5000.0]
width = 140.0
rate = 1.0
pd = 0.95
clutter = 1.0
sigma_range = 10.0
sigma_bearing = 0.2
latency = [0.1, 0.3]
"""

# A vehicle crossing from the south and a patrol that stays 1.5 km north, one radar:
# the end-to-end run through real processes.
E2E = """
name = "e2e"
seed = 5
duration = 150.0
truth_dt = 1.0
origin = [24.0, 45.0]
area = [[-6000.0, -5000.0], [6000.0, 5000.0]]

[[zones]]
name = "zone-e"
sides = ["north", "south"]
local = [[-5000.0, -400.0], [5000.0, -400.0], [5000.0, 400.0], [-5000.0, 400.0]]

[[targets]]
name = "crosser"
cls = "vehicle"
behaviour = "cross"
side = "south"
along = 0.5
offset = 900.0
speed = 12.0
birth = 0.0

[[targets]]
name = "patrol"
cls = "vehicle"
behaviour = "patrol"
side = "north"
along = [0.1, 0.4]
offset = 1500.0
speed = 8.0
birth = 0.0

[[sensors]]
id = "radar-1"
kind = "radar"
position = [0.0, -4000.0]
azimuth = 0.0
width = 120.0
range = [100.0, 9000.0]
rate = 1.0
pd = 0.95
clutter = 1.0
sigma_range = 10.0
sigma_bearing = 0.1
latency = [0.05, 0.1]
"""

# Zones only: the recovery test drives its own detections.
RECOVERY = """
name = "recovery"
seed = 1
duration = 150.0
origin = [24.0, 45.0]
area = [[-6000.0, -5000.0], [6000.0, 5000.0]]

[[zones]]
name = "zone-r"
sides = ["north", "south"]
local = [[-5000.0, -400.0], [5000.0, -400.0], [5000.0, 400.0], [-5000.0, 400.0]]
"""

SCENARIOS = {"small": SMALL, "tiny": TINY, "e2e": E2E, "recovery": RECOVERY}
