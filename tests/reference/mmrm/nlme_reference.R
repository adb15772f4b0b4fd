# Reference values for tests/test_mmrm.py from R nlme::gls (and emmeans) on fev_data.
#
# Run from the repository root:
#   Rscript tests/reference/mmrm/nlme_reference.R
# It reads tests/reference/mmrm/fev_data.csv (the mmrm R package's simulated FEV1 trial,
# Apache-2.0, as distributed with that package (data(fev_data)); or the path given as the
# first argument) and writes tests/reference/mmrm/nlme_reference.json. The tests only read the
# JSON, so they do not need R.
#
# Each model is FEV1 ~ RACE + SEX + ARMCD * AVISIT fitted by REML, with the residual
# covariance of one of the structures fit_mmrm offers:
#   cs   corCompSymm                                  (constant variance)
#   csh  corCompSymm + varIdent(~ 1 | AVISIT)         (a variance per visit)
#   ar1  corAR1(~ VISITN | USUBJID)                   (lag = visit number, not row order)
#   ar1h corAR1(~ VISITN | USUBJID) + varIdent(~ 1 | AVISIT)
#   us   corSymm(~ VISITN | USUBJID) + varIdent(~ 1 | AVISIT), a cross-check of the SAS
#        PROC MIXED listing quoted in docs/references.md.
# nlme's REML log-likelihood is on the same scale as SAS's (-2 x the us fit's value is the
# 3386.45 of the SAS listing).

suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
path <- if (length(args) >= 1) args[1] else "tests/reference/mmrm/fev_data.csv"
fev <- read.csv(path, stringsAsFactors = FALSE)
fev <- fev[!is.na(fev$FEV1), ]
for (v in c("USUBJID", "AVISIT", "ARMCD", "RACE", "SEX")) fev[[v]] <- factor(fev[[v]])

# emmeans gives the LS means and TRT - PBO differences (estimates and SEs) for each
# structure. Its Satterthwaite df for gls are not written: they come from nlme's
# approximate variance of the variance parameters, fail for some of these fits and are not
# the SAS/mmrm definition (the tests take the df from SAS PROC MIXED instead).
ctrl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-10)
models <- list(
  cs = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
           correlation = corCompSymm(form = ~ 1 | USUBJID),
           method = "REML", control = ctrl),
  csh = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
            correlation = corCompSymm(form = ~ 1 | USUBJID),
            weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctrl),
  ar1 = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
            correlation = corAR1(form = ~ VISITN | USUBJID),
            method = "REML", control = ctrl),
  ar1h = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
             correlation = corAR1(form = ~ VISITN | USUBJID),
             weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctrl),
  us = gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, fev,
           correlation = corSymm(form = ~ VISITN | USUBJID),
           weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctrl)
)

# A subject observed at all four visits, so getVarCov returns the full 4 x 4 matrix.
complete <- names(which(table(fev$USUBJID) == 4))[1]

describe <- function(fit) {
  V <- unclass(getVarCov(fit, individual = complete))
  emm <- emmeans(fit, ~ ARMCD | AVISIT, mode = "df.error")
  lsm <- as.data.frame(summary(emm))
  diffs <- as.data.frame(summary(contrast(emm, "trt.vs.ctrl"), infer = TRUE))
  list(
    coefficients = data.frame(term = names(coef(fit)), estimate = unname(coef(fit)),
                              se = unname(sqrt(diag(vcov(fit))))),
    loglik_nlme = as.numeric(logLik(fit)),
    covariance = unname(V),
    lsmeans = data.frame(ARMCD = as.character(lsm$ARMCD), AVISIT = as.character(lsm$AVISIT),
                         estimate = lsm$emmean, se = lsm$SE),
    pairwise = data.frame(AVISIT = as.character(diffs$AVISIT),
                          contrast = as.character(diffs$contrast),
                          estimate = diffs$estimate, se = diffs$SE)
  )
}

out <- list(
  source = sprintf("R %s.%s, nlme %s, emmeans %s; tests/reference/mmrm/nlme_reference.R",
                   R.version$major, R.version$minor, packageVersion("nlme"),
                   packageVersion("emmeans")),
  formula = "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
  n_obs = nrow(fev),
  visits = levels(fev$AVISIT),
  models = lapply(models, describe)
)
write_json(out, "tests/reference/mmrm/nlme_reference.json", digits = NA, pretty = TRUE, auto_unbox = TRUE)
cat("wrote tests/reference/mmrm/nlme_reference.json\n")
