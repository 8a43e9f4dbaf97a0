-- Placeholder on branch issue-13 only: 0012 belongs to another branch (issues 15/16/18).
-- The integrator deletes this file when merging; the other branch's 0012 replaces it.
SELECT 1;
