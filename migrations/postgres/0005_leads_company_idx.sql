-- Leads by company, case- and space-insensitively: the MCP server's `get_company`
-- aggregates a company's leads through this index instead of scanning them (PostgreSQL
-- dialect; keep in step with ../sqlite/0005_leads_company_idx.sql). Queries must use
-- the same expression, `lower(trim(company))`.
CREATE INDEX leads_company_idx ON leads ((lower(trim(company))));
