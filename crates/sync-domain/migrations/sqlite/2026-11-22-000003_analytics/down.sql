DROP TABLE alerts;
DROP TABLE snapshots;
DROP TABLE sync_events;
DROP TABLE device_health;
