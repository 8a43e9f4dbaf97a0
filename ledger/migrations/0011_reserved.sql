-- Placeholder on branch issue-13 only: 0011 belongs to another branch (issues 15/16/18).
-- The integrator deletes this file when merging; the other branch's 0011 replaces it.
SELECT 1;
