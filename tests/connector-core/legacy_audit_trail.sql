-- An audit trail as the version before compressed blocks left it (SQLite): its CREATE statements and rows exactly as
-- that version wrote them (run 1: entries 1-7, two failed, entry 3 replayed since by run 2's entry 8).
CREATE TABLE audit_runs (
	run_id VARCHAR NOT NULL, 
	flow VARCHAR NOT NULL, 
	plugin VARCHAR NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	status VARCHAR NOT NULL, 
	summary TEXT, 
	reason TEXT, 
	host VARCHAR, 
	pid INTEGER, 
	process_start VARCHAR, 
	heartbeat_at DATETIME, 
	pipeline_run_id VARCHAR, 
	pipeline_database TEXT, 
	pipeline_state VARCHAR, 
	PRIMARY KEY (run_id)
);
CREATE INDEX ix_audit_runs_started_at ON audit_runs (started_at);
CREATE INDEX ix_audit_runs_running ON audit_runs (status) WHERE status = 'running';
CREATE TABLE audit_schemas (
	run_id VARCHAR NOT NULL, 
	stream VARCHAR NOT NULL, 
	schema TEXT NOT NULL, 
	key_properties TEXT NOT NULL, 
	PRIMARY KEY (run_id, stream)
);
CREATE TABLE audit_records (
	id INTEGER NOT NULL, 
	run_id VARCHAR NOT NULL, 
	flow VARCHAR NOT NULL, 
	stream VARCHAR NOT NULL, 
	record_key TEXT NOT NULL, 
	record_version VARCHAR, 
	operation VARCHAR NOT NULL, 
	destination TEXT, 
	outcome VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	error TEXT, 
	payload TEXT, 
	source TEXT, 
	written_at DATETIME NOT NULL, 
	replay_of BIGINT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_audit_records_failed ON audit_records (outcome) WHERE outcome = 'failed';
CREATE INDEX ix_audit_records_stream_key ON audit_records (stream, record_key);
CREATE INDEX ix_audit_records_run_id ON audit_records (run_id);
CREATE INDEX ix_audit_records_replay_of ON audit_records (replay_of) WHERE replay_of IS NOT NULL;
INSERT INTO "audit_records" VALUES(1,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000001"}','2026-10-31T10:00:01Z','insert','/data/ifs/purchase_orders','succeeded',1,NULL,'{"OrderNo":"P1000001","Company":"10","TotalNetAmount":1234.50,"Rate":1E+2,"NoteText":null}',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(2,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000002"}','2026-10-30T10:00:02Z','insert','/data/ifs/purchase_orders','succeeded',1,NULL,'{"OrderNo":"P1000002","Company":"10","TotalNetAmount":2234.50,"Rate":1E+2,"NoteText":"O''Brien \"ü\""}',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(3,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000003"}','2026-10-31T10:00:03Z','insert','/data/ifs/purchase_orders','replayed',4,'HTTP 503: retries exhausted','{"OrderNo":"P1000003","Company":"10","TotalNetAmount":3234.50,"Rate":1E+2,"NoteText":null}',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(4,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000004"}','2026-10-30T10:00:04Z','insert','/data/ifs/purchase_orders','succeeded',1,NULL,'{"OrderNo":"P1000004","Company":"10","TotalNetAmount":4234.50,"Rate":1E+2,"NoteText":null}',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(5,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000005"}','2026-10-31T10:00:05Z','insert','/data/ifs/purchase_orders','failed',4,'HTTP 503: retries exhausted','{"OrderNo":"P1000005","Company":"10","TotalNetAmount":5234.50,"Rate":1E+2,"NoteText":null}',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(6,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000006"}','2026-10-30T10:00:06Z','insert','/data/ifs/purchase_orders','succeeded',1,NULL,'{"OrderNo":"P1000006","Company":"10","TotalNetAmount":6234.50,"Rate":1E+2,"NoteText":null}',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(7,'20261101T080000Z-0a1b2c3d','ifs-to-databricks','vouchers','{"Company":"10","VoucherNo":7}',NULL,'unchanged','/data/ifs/vouchers','succeeded',1,NULL,'["not","an","object"]',NULL,'2026-11-01 08:00:02.343875+00:00',NULL);
INSERT INTO "audit_records" VALUES(8,'20261101T090000Z-11111111','ifs-to-databricks','purchase_orders','{"OrderNo":"P1000003"}','2026-10-31T10:00:03Z','insert','/data/ifs/purchase_orders','succeeded',1,NULL,'{"OrderNo":"P1000003","Company":"10","TotalNetAmount":3234.50,"Rate":1E+2,"NoteText":null}',NULL,'2026-11-01 08:00:02.343875',3);
INSERT INTO "audit_runs" VALUES('20261101T080000Z-0a1b2c3d','ifs-to-databricks','target-databricks','2026-11-01 08:00:02.343875','2026-11-01 08:00:02.343875','succeeded',NULL,NULL,'build-host',17028,NULL,'2026-11-01 08:00:02.343875',NULL,NULL,NULL);
INSERT INTO "audit_runs" VALUES('20261101T090000Z-11111111','ifs-to-databricks','mlc-audit replay','2026-11-01 08:00:02.343875','2026-11-01 08:00:02.343875','succeeded',NULL,NULL,'build-host',17028,NULL,'2026-11-01 08:00:02.343875',NULL,NULL,NULL);
INSERT INTO "audit_schemas" VALUES('20261101T080000Z-0a1b2c3d','purchase_orders','{"type":"object","properties":{"OrderNo":{"type":"string"}}}','["OrderNo"]');
