# Reference values for tests/test_missing_data.py::test_rubin_rules_matches_mice_pool.
# R 4.2.2, mice 3.15.0 (Debian packages r-base-core, r-cran-mice). Run:
#   Rscript tests/reference/rubin_mice_pool.R
# mice::pool() combines by Rubin's rules with the Barnard-Rubin df; pool.scalar() takes
# the per-imputation estimates and variances directly.
library(mice)
q <- c(1.0, 1.2, 0.9, 1.1, 1.3)
u <- c(0.04, 0.05, 0.04, 0.05, 0.045)
for (dfcom in c(50, Inf)) {
  p <- pool.scalar(q, u, n = dfcom + 1, k = 1)
  cat(sprintf("dfcom=%s qbar=%.10f ubar=%.10f b=%.10f t=%.10f df=%.10f r=%.10f fmi=%.10f\n",
              dfcom, p$qbar, p$ubar, p$b, p$t, p$df, p$r, p$fmi))
}
# A full mice::pool on nhanes: lm(chl ~ bmi) over m = 5 imputations (seed 1), the bmi row.
imp <- mice(nhanes, m = 5, seed = 1, printFlag = FALSE)
fit <- with(imp, lm(chl ~ bmi))
est <- sapply(fit$analyses, function(f) coef(f)[["bmi"]])
var <- sapply(fit$analyses, function(f) vcov(f)[["bmi", "bmi"]])
cat("est", sprintf("%.10f", est), "\n")
cat("var", sprintf("%.10f", var), "\n")
s <- summary(pool(fit), conf.int = TRUE)
pl <- pool(fit)$pooled
b <- pl[pl$term == "bmi", ]
cat(sprintf("pool estimate=%.10f ubar=%.10f b=%.10f t=%.10f dfcom=%d df=%.10f riv=%.10f lambda=%.10f fmi=%.10f\n",
            b$estimate, b$ubar, b$b, b$t, b$dfcom, b$df, b$riv, b$lambda, b$fmi))
r <- s[s$term == "bmi", ]
cat(sprintf("ci %.10f %.10f p %.10f\n", r[["2.5 %"]], r[["97.5 %"]], r$p.value))
