DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE sync_windows;
DROP TABLE risk_scores;
DROP TABLE risk_models;
DROP TABLE anomalies;
