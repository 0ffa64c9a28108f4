-- Reserved for issue 14 (tokens, upload ownership, quotas); a no-op until that change lands.
SELECT 1;
