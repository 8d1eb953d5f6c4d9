-- run once in each of the two databases (kflow_bank_a, kflow_bank_b)
CREATE TABLE IF NOT EXISTS kflow_acct (
  id TEXT PRIMARY KEY,
  balance NUMERIC NOT NULL CHECK (balance >= 0)
);
INSERT INTO kflow_acct VALUES ('a', 100), ('b', 0) ON CONFLICT DO NOTHING;
