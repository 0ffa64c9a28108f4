-- Reserved for issue 13 (analysis names and tags); a no-op until that change lands.
SELECT 1;
