-- Placeholder on branch issue-13 only: 0010 belongs to another branch (issues 15/16/18).
-- The integrator deletes this file when merging; the other branch's 0010 replaces it.
SELECT 1;
