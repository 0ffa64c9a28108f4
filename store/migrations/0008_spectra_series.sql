-- Reserved for issue 16 (ΔW spectra, training-run series); a no-op until that change lands.
SELECT 1;
