# Reference values for tests/test_survival.py.
#
# Run from the repository root:
#   Rscript tests/reference/survival/survival_reference.R
# Writes, next to this script:
#   survival_data.csv   dataset, group, time, event (the inputs)
#   km.csv              Kaplan-Meier at each event time, conf.type = "log-log" (Greenwood)
#   median.csv          median survival time and its 95% CI (log-log curves)
#   logrank.csv         survdiff() chi-square, df and p-value (rho = 0, the log-rank test)
suppressPackageStartupMessages(library(survival))

out_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
sv_version <- as.character(packageVersion("survival"))

data <- rbind(
  # docs/references.md: the R survival example used in statsmodels' tests (one group).
  data.frame(
    dataset = "statsmodels", group = "all",
    time = c(3, 1, 2, 3, 2, 1, 5, 3), event = c(0, 1, 1, 1, 0, 0, 1, 0)
  ),
  # Invented time to response (study days of the scheduled visits) in two routes,
  # with ties, censoring and a group whose curve does not reach 0.5.
  data.frame(
    dataset = "two_routes", group = "iv",
    time = c(1, 1, 7, 7, 7, 14, 14, 28, 28, 56, 84, 84),
    event = c(1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0)
  ),
  data.frame(
    dataset = "two_routes", group = "oral",
    time = c(7, 7, 14, 14, 28, 28, 28, 56, 56, 84, 84, 84, 84, 14),
    event = c(1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0)
  ),
  # Invented: the curve sits at exactly 0.5 between days 14 and 28 (median = midpoint).
  data.frame(
    dataset = "exact_half", group = "all",
    time = c(7, 14, 28, 56), event = c(1, 1, 1, 0)
  )
)
write.csv(data, file.path(out_dir, "survival_data.csv"), row.names = FALSE)

km_rows <- list()
med_rows <- list()
lr_rows <- list()
for (ds in unique(data$dataset)) {
  d <- data[data$dataset == ds, ]
  for (g in unique(d$group)) {
    dg <- d[d$group == g, ]
    fit <- survfit(Surv(time, event) ~ 1, data = dg, conf.type = "log-log")
    s <- summary(fit) # event times only
    km_rows[[length(km_rows) + 1]] <- data.frame(
      dataset = ds, group = g, time = s$time, n_at_risk = s$n.risk, n_events = s$n.event,
      survival = s$surv, std_err = s$std.err, ci_low = s$lower, ci_high = s$upper
    )
    tab <- summary(fit)$table
    med_rows[[length(med_rows) + 1]] <- data.frame(
      dataset = ds, group = g, n = unname(tab["records"]), n_events = unname(tab["events"]),
      median = unname(tab["median"]), ci_low = unname(tab["0.95LCL"]),
      ci_high = unname(tab["0.95UCL"])
    )
  }
  if (length(unique(d$group)) > 1) {
    sd <- survdiff(Surv(time, event) ~ group, data = d)
    df <- length(sd$n) - 1
    lr_rows[[length(lr_rows) + 1]] <- data.frame(
      dataset = ds, chi2 = sd$chisq, df = df,
      p_value = pchisq(sd$chisq, df, lower.tail = FALSE)
    )
  }
}
km <- do.call(rbind, km_rows)
km$source <- paste("R survival", sv_version)
med <- do.call(rbind, med_rows)
med$source <- paste("R survival", sv_version)
lr <- do.call(rbind, lr_rows)
lr$source <- paste("R survival", sv_version)
write.csv(km, file.path(out_dir, "km.csv"), row.names = FALSE)
write.csv(med, file.path(out_dir, "median.csv"), row.names = FALSE)
write.csv(lr, file.path(out_dir, "logrank.csv"), row.names = FALSE)
cat("wrote survival references with survival", sv_version, "\n")
