"""The Indonesian words people read for the codes the system keeps (statuses, segments, programmes...).

Pages and notices show these labels, never the codes: an unknown code shows as a neutral word,
so a new code added to a contract cannot leak into a letter before it has a label here.
"""

from __future__ import annotations

COMMITMENT_STATUS = {
    "requested": "belum disampaikan", "draft": "masih berupa konsep (belum disampaikan)",
    "submitted": "telah disampaikan, menunggu verifikasi", "returned": "dikembalikan untuk perbaikan",
    "verified": "telah diverifikasi Disnakertrans", "acknowledged": "telah diterima BPJS Ketenagakerjaan",
    "withdrawn": "ditarik kembali",
}
SEGMENT = {
    "pekerja_rentan_bpu": "Pekerja rentan (Bukan Penerima Upah)", "non_asn_ppu": "Pegawai non-ASN (Penerima Upah)",
    "perangkat_desa": "Perangkat desa", "petani_tembakau": "Petani tembakau",
    "penyelenggara_pemilu": "Penyelenggara pemilu ad hoc", "pekerja_keagamaan": "Pekerja keagamaan (marbot, guru ngaji)",
    "lainnya": "Lainnya",
}
PROGRAMME = {"jkk": "Jaminan Kecelakaan Kerja (JKK)", "jkm": "Jaminan Kematian (JKM)",
             "jht": "Jaminan Hari Tua (JHT)", "jp": "Jaminan Pensiun (JP)"}
FUNDING_SOURCE = {
    "apbd_kabupaten_kota": "APBD Kabupaten/Kota", "apbd_provinsi": "APBD Provinsi",
    "dbhcht": "Dana Bagi Hasil Cukai Hasil Tembakau (DBHCHT)", "apbdes_add": "APBDes/Alokasi Dana Desa",
    "csr": "Dana CSR", "lainnya": "Sumber lain",
}
BUDGET_STAGE = {"murni": "APBD Murni", "perubahan": "APBD Perubahan"}
RSVP = {"accepted": "hadir", "declined": "tidak hadir", "delegated": "diwakilkan"}

UNKNOWN = "lainnya"


def label(table: dict[str, str], code: object) -> str:
    """The label of `code` (an enum member or its value); never the code itself."""
    value = getattr(code, "value", code)
    return table.get(str(value), UNKNOWN)
