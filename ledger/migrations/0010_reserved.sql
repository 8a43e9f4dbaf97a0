-- Reserved for another branch's migration 0010 (issue 15 was given 0011).
-- Migrations are numbered without gaps, so this branch carries an empty 0010;
-- DELETE THIS FILE when merging with the branch that brings the real 0010.
SELECT 1;
