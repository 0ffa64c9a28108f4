-- Reserved for issue 11 (alignment, precision, attention geometry); a no-op until that change lands.
SELECT 1;
