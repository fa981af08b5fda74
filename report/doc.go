// Package report renders results for people and programs: tables (via
// tablewriter) and JSON. It formats; it computes nothing. Floats that can be
// undefined (an AUC over one class) are written as JSON null rather than
// breaking the encoder.
package report
